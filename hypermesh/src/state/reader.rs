//! A consistent view of one committed version, for executing a block on
//! top of it and for answering queries.

use redb::{ReadOnlyTable, ReadableDatabase};

use super::store::{readable_root, StateStore};
use super::tables::{newest_value, ROOTS, VALUES};
use super::{db_err, key_hash};
use std::sync::Arc;

use super::store::StagedState;
use crate::codec::Hash;
use crate::error::{Error, Result};
use crate::runtime::StateRead;

/// The state at one version, read from a single database snapshot: a
/// commit running meanwhile does not change what it returns.
pub struct StateReader {
    values: ReadOnlyTable<&'static [u8], &'static [u8]>,
    version: u64,
    root: Hash,
}

impl std::fmt::Debug for StateReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateReader")
            .field("version", &self.version)
            .field("root", &stoq::crypto::hex(&self.root))
            .finish()
    }
}

impl StateReader {
    /// The version it reads.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The state root of that version.
    pub fn root(&self) -> Hash {
        self.root
    }
}

impl StateRead for StateReader {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_hashed(&key_hash(key))
    }
}

impl StateReader {
    fn get_hashed(&self, hash: &Hash) -> Result<Option<Vec<u8>>> {
        Ok(newest_value(&self.values, hash, self.version)?.and_then(|(_, v)| v))
    }
}

/// The state after a staged version that may not be written yet: its
/// writes (and those of the staged version below it, if that is not
/// written either) over a committed version. What the next block executes
/// on while the one before it is still committing.
pub struct PendingReader {
    base: StateReader,
    /// Newest first.
    layers: Vec<Arc<StagedState>>,
}

impl std::fmt::Debug for PendingReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingReader")
            .field("base", &self.base)
            .field("layers", &self.layers)
            .finish()
    }
}

impl PendingReader {
    /// The version it reads (the newest staged one).
    pub fn version(&self) -> u64 {
        self.layers.first().map_or(self.base.version(), |l| l.version())
    }
}

impl StateRead for PendingReader {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let hash = key_hash(key);
        for layer in &self.layers {
            if let Some(v) = layer.value(&hash) {
                return Ok(v.cloned());
            }
        }
        self.base.get_hashed(&hash)
    }
}

impl StateStore {
    /// A reader of `version`, which must be readable (written, not pruned).
    pub fn reader(&self, version: u64) -> Result<StateReader> {
        let txn = self.database().begin_read().map_err(db_err)?;
        let root = readable_root(&txn.open_table(ROOTS).map_err(db_err)?, version)?;
        let values = txn.open_table(VALUES).map_err(db_err)?;
        Ok(StateReader { values, version, root })
    }

    /// A reader of the state after `staged`, written or not, when the
    /// version it was staged on is written.
    pub fn reader_after(&self, staged: &Arc<StagedState>) -> Result<PendingReader> {
        self.reader_after_layers(vec![staged.clone()])
    }

    /// A reader of the state after `staged`, which was staged on `parent`,
    /// neither of them necessarily written: what the block after a block
    /// that is still committing needs once it is built itself.
    pub fn reader_after_pair(&self, parent: &Arc<StagedState>, staged: &Arc<StagedState>) -> Result<PendingReader> {
        if staged.parent() != Some(parent.version()) {
            return Err(Error::VersionUnavailable {
                version: staged.version(),
                reason: format!("it was not staged on version {}", parent.version()),
            });
        }
        self.reader_after_layers(vec![staged.clone(), parent.clone()])
    }

    /// `layers` newest first, each staged on the next, the last on a
    /// version that must be readable.
    fn reader_after_layers(&self, layers: Vec<Arc<StagedState>>) -> Result<PendingReader> {
        let oldest = layers
            .last()
            .ok_or_else(|| Error::Store("no staged version to read after".into()))?;
        let below = oldest.parent().ok_or_else(|| Error::VersionUnavailable {
            version: oldest.version(),
            reason: "it was staged on an empty state".into(),
        })?;
        Ok(PendingReader {
            base: self.reader(below)?,
            layers,
        })
    }
}
