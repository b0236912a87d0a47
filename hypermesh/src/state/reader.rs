//! A consistent view of one committed version, for executing a block on
//! top of it and for answering queries.

use redb::{ReadOnlyTable, ReadableDatabase};

use super::store::{readable_root, StateStore};
use super::tables::{newest_value, ROOTS, VALUES};
use super::{db_err, key_hash};
use crate::codec::Hash;
use crate::error::Result;
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
        Ok(newest_value(&self.values, &key_hash(key), self.version)?.and_then(|(_, v)| v))
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
}
