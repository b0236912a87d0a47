//! Helpers shared by the state tests.

use std::sync::Arc;

use redb::backends::InMemoryBackend;
use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableDefinition};

use super::StateStore;
use crate::codec::Hash;

/// A fresh in-memory database.
pub(super) fn mem_db() -> Arc<Database> {
    Arc::new(Database::builder().create_with_backend(InMemoryBackend::new()).unwrap())
}

/// A state store over a fresh in-memory database.
pub(super) fn store() -> StateStore {
    StateStore::open(mem_db()).unwrap()
}

/// Writes, as (key, value-or-delete) string pairs.
pub(super) type Writes<'a> = &'a [(&'a str, Option<&'a str>)];

/// Stages and commits `version`, returning its root.
pub(super) fn commit(store: &StateStore, version: u64, writes: Writes<'_>) -> Hash {
    let staged = store
        .stage(
            version,
            writes
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))),
        )
        .unwrap();
    store.commit(&staged).unwrap();
    assert_eq!(store.root(version).unwrap(), staged.root());
    staged.root()
}

/// Rows in one of the store's tables.
pub(super) fn rows<V: redb::Value + 'static>(store: &StateStore, table: TableDefinition<'_, &'static [u8], V>) -> u64 {
    let txn = store.database().begin_read().unwrap();
    txn.open_table(table).unwrap().len().unwrap()
}
