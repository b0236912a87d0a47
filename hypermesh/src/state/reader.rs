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
/// writes over the committed version it was staged on. What the next
/// block executes on while the one before it is still committing.
pub struct PendingReader {
    base: StateReader,
    staged: Arc<StagedState>,
}

impl std::fmt::Debug for PendingReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingReader")
            .field("base", &self.base)
            .field("staged", &self.staged)
            .finish()
    }
}

impl PendingReader {
    /// The version it reads (the staged one).
    pub fn version(&self) -> u64 {
        self.staged.version()
    }
}

impl StateRead for PendingReader {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let hash = key_hash(key);
        match self.staged.value(&hash) {
            Some(v) => Ok(v.cloned()),
            None => self.base.get_hashed(&hash),
        }
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

    /// A reader of the state after `staged`, written or not.
    pub fn reader_after(&self, staged: &Arc<StagedState>) -> Result<PendingReader> {
        let below = staged.parent().ok_or_else(|| Error::VersionUnavailable {
            version: staged.version(),
            reason: "it was staged on an empty state".into(),
        })?;
        Ok(PendingReader {
            base: self.reader(below)?,
            staged: staged.clone(),
        })
    }
}
