//! The state store: reads, staging and writing versions.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::sync::Arc;

use jmt::storage::TreeUpdateBatch;
use jmt::KeyHash;
use redb::{Database, ReadableDatabase, ReadableTable, Table, WriteTransaction};

use super::proof::StateProof;
use super::tables::{
    encode_value, newest_value, node_key, stale_value_key, value_key, StandIn, TreeView, NODES, PREIMAGES, ROOTS,
    STALE_NODES, STALE_VALUES, VALUES,
};
use super::{db_err, key_hash, tree_err, Tree, MAX_KEY_LEN, MAX_VALUE_LEN};
use crate::codec::{check_len, Hash};
use crate::error::{Error, Result};

/// The authenticated state, in tables of a database shared with the
/// block store. Cheap to clone; all clones see the same database.
#[derive(Clone)]
pub struct StateStore {
    db: Arc<Database>,
}

/// A version computed but not written: its root and the tree nodes and
/// values that [`StateStore::write`] puts into a transaction.
pub struct StagedState {
    version: u64,
    /// The latest version when staged; writing refuses if it changed,
    /// since the nodes were computed on top of it.
    parent: Option<u64>,
    root: Hash,
    batch: TreeUpdateBatch,
    /// Keys of the values written, by key hash (for snapshots).
    preimages: Vec<(Hash, Vec<u8>)>,
}

impl StagedState {
    /// The version (block height) this state is for.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The state root of this version.
    pub fn root(&self) -> Hash {
        self.root
    }

    /// The version it was staged on (`None`: an empty state).
    pub fn parent(&self) -> Option<u64> {
        self.parent
    }

    /// What it writes under the key with this hash: `Some(None)` for a
    /// deletion, `None` if it does not touch the key.
    pub(super) fn value(&self, key_hash: &Hash) -> Option<Option<&Vec<u8>>> {
        self.batch
            .node_batch
            .values()
            .get(&(self.version, KeyHash(*key_hash)))
            .map(Option::as_ref)
    }

    /// How many tree nodes writing it adds (informational).
    pub fn new_nodes(&self) -> usize {
        self.batch.node_batch.nodes().len()
    }
}

impl std::fmt::Debug for StagedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedState")
            .field("version", &self.version)
            .field("parent", &self.parent)
            .field("root", &stoq::crypto::hex(&self.root))
            .field("new_nodes", &self.new_nodes())
            .finish()
    }
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore").finish_non_exhaustive()
    }
}

impl StateStore {
    /// Opens the state in `db`, creating its tables if they do not exist.
    pub fn open(db: Arc<Database>) -> Result<StateStore> {
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(NODES).map_err(db_err)?;
        txn.open_table(VALUES).map_err(db_err)?;
        txn.open_table(PREIMAGES).map_err(db_err)?;
        txn.open_table(ROOTS).map_err(db_err)?;
        txn.open_table(STALE_NODES).map_err(db_err)?;
        txn.open_table(STALE_VALUES).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(StateStore { db })
    }

    /// The database the state lives in.
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// The newest version written, `None` while the state is empty.
    pub fn latest_version(&self) -> Result<Option<u64>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        last_version(&txn.open_table(ROOTS).map_err(db_err)?)
    }

    /// The oldest version still readable (pruning moves it up).
    pub fn oldest_version(&self) -> Result<Option<u64>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let roots = txn.open_table(ROOTS).map_err(db_err)?;
        let first = roots.first().map_err(db_err)?;
        Ok(first.map(|(k, _)| k.value()))
    }

    /// The state root of `version` ([`super::EMPTY_ROOT`] if it holds
    /// nothing).
    pub fn root(&self, version: u64) -> Result<Hash> {
        let txn = self.db.begin_read().map_err(db_err)?;
        readable_root(&txn.open_table(ROOTS).map_err(db_err)?, version)
    }

    /// The value of `key` at `version`, from the values table (no tree
    /// walk, no proof).
    pub fn get(&self, key: &[u8], version: u64) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        readable_root(&txn.open_table(ROOTS).map_err(db_err)?, version)?;
        let values = txn.open_table(VALUES).map_err(db_err)?;
        Ok(newest_value(&values, &key_hash(key), version)?.and_then(|(_, v)| v))
    }

    /// The value of `key` at `version` with a proof of it (of inclusion, or
    /// of exclusion when the key is absent) against [`StateStore::root`].
    pub fn get_with_proof(&self, key: &[u8], version: u64) -> Result<(Option<Vec<u8>>, StateProof)> {
        let txn = self.db.begin_read().map_err(db_err)?;
        readable_root(&txn.open_table(ROOTS).map_err(db_err)?, version)?;
        let nodes = txn.open_table(NODES).map_err(db_err)?;
        let values = txn.open_table(VALUES).map_err(db_err)?;
        let view = TreeView::new(&nodes, &values);
        let (value, proof) = Tree::new(&view)
            .get_with_proof(KeyHash(key_hash(key)), version)
            .map_err(tree_err)?;
        Ok((value, StateProof::from_jmt(&proof)?))
    }

    /// Computes `version` from the committed latest version and `writes`
    /// (`None` deletes the key), without writing anything.
    ///
    /// `version` must be the latest plus one; on an empty state any
    /// version may come first (genesis, or the height a state starts at).
    /// When a key appears more than once, its last write counts.
    pub fn stage(
        &self,
        version: u64,
        writes: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<StagedState> {
        self.stage_on(None, version, writes)
    }

    /// [`StateStore::stage`] on top of `parent`, a staged version not yet
    /// written (the block before, still committing): `version` follows
    /// it, and writing it requires `parent` written first. A parent
    /// already written is the latest version, as for [`StateStore::stage`].
    pub fn stage_on(
        &self,
        parent: Option<&StagedState>,
        version: u64,
        writes: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<StagedState> {
        // Sorted by key hash and deduplicated, so the root depends only on
        // the final set of writes, never on their order.
        let mut set: BTreeMap<Hash, (Vec<u8>, Option<Vec<u8>>)> = BTreeMap::new();
        for (key, value) in writes {
            check_len("state key", key.len(), MAX_KEY_LEN)?;
            if let Some(v) = &value {
                check_len("state value", v.len(), MAX_VALUE_LEN)?;
            }
            match set.entry(key_hash(&key)) {
                Entry::Occupied(e) if e.get().0 != key => {
                    return Err(Error::Store("two state keys share a SHA3-256 hash".into()));
                }
                Entry::Occupied(mut e) => e.get_mut().1 = value,
                Entry::Vacant(e) => {
                    e.insert((key, value));
                }
            }
        }

        let txn = self.db.begin_read().map_err(db_err)?;
        let latest = last_version(&txn.open_table(ROOTS).map_err(db_err)?)?;
        // A staged parent not yet written stands in for the latest.
        let pending = match parent {
            Some(p) if latest == Some(p.version) => None,
            Some(p) if latest == p.parent => Some(p),
            Some(p) => {
                return Err(Error::VersionUnavailable {
                    version,
                    reason: format!(
                        "its parent {} is neither written nor staged on the latest version {latest:?}",
                        p.version
                    ),
                })
            }
            None => None,
        };
        let parent = pending.map_or(latest, |p| Some(p.version));
        if let Some(p) = parent {
            if p.checked_add(1) != Some(version) {
                return Err(Error::VersionUnavailable {
                    version,
                    reason: format!("the next version to stage is {}", p.saturating_add(1)),
                });
            }
        }
        let nodes = txn.open_table(NODES).map_err(db_err)?;
        let values = txn.open_table(VALUES).map_err(db_err)?;
        let view = match parent {
            // jmt starts version v from the root of v - 1; on an empty
            // state that root is the empty tree (jmt knows this for 0 only).
            None if version > 0 => TreeView::building(&nodes, &values, version, StandIn::Empty)?,
            _ => TreeView::new(&nodes, &values),
        };
        let view = match pending {
            Some(p) => view.over(&p.batch.node_batch, p.version),
            None => view,
        };

        let mut preimages = Vec::new();
        let mut value_set = Vec::with_capacity(set.len());
        for (hash, (key, value)) in set {
            if value.is_some() {
                preimages.push((hash, key));
            }
            value_set.push((KeyHash(hash), value));
        }
        let tree = Tree::new(&view);
        let (root, batch) = if !value_set.is_empty() && value_set.iter().all(|(_, v)| v.is_some()) {
            // No deletion: jmt's batch insert builds each touched subtree
            // once for the whole sorted set, where the general path walks
            // from the root for every key. Same tree, same root.
            let sets = vec![value_set.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect()];
            let (roots, batch) = tree.batch_put_value_sets(sets, None, version).map_err(tree_err)?;
            let root = roots
                .first()
                .copied()
                .ok_or_else(|| Error::Store("jmt returned no root".into()))?;
            (root, batch)
        } else {
            tree.put_value_set(value_set, version).map_err(tree_err)?
        };
        Ok(StagedState {
            version,
            parent,
            root: root.0,
            batch,
            preimages,
        })
    }

    /// Writes a staged version into the caller's transaction; it becomes
    /// visible when the caller commits, and not at all if it does not.
    pub fn write(&self, txn: &WriteTransaction, staged: &StagedState) -> Result<()> {
        let mut roots = txn.open_table(ROOTS).map_err(db_err)?;
        let latest = last_version(&roots)?;
        if latest != staged.parent {
            return Err(Error::VersionUnavailable {
                version: staged.version,
                reason: format!("staged on version {:?} but the latest is now {latest:?}", staged.parent),
            });
        }
        let mut nodes = txn.open_table(NODES).map_err(db_err)?;
        let mut values = txn.open_table(VALUES).map_err(db_err)?;
        let mut preimages = txn.open_table(PREIMAGES).map_err(db_err)?;
        let mut stale_nodes = txn.open_table(STALE_NODES).map_err(db_err)?;
        let mut stale_values = txn.open_table(STALE_VALUES).map_err(db_err)?;

        for (key, node) in staged.batch.node_batch.nodes() {
            let raw = borsh::to_vec(node).map_err(db_err)?;
            nodes
                .insert(node_key(key)?.as_slice(), raw.as_slice())
                .map_err(db_err)?;
        }
        for stale in &staged.batch.stale_node_index_batch {
            let mut key = stale.stale_since_version.to_be_bytes().to_vec();
            key.extend_from_slice(&node_key(&stale.node_key)?);
            stale_nodes.insert(key.as_slice(), ()).map_err(db_err)?;
        }
        for ((version, hash), value) in staged.batch.node_batch.values() {
            let value = value.as_deref();
            write_value(&mut values, &mut stale_values, *version, &hash.0, value)?;
        }
        for (hash, key) in &staged.preimages {
            preimages.insert(hash.as_slice(), key.as_slice()).map_err(db_err)?;
        }
        roots.insert(staged.version, staged.root).map_err(db_err)?;
        Ok(())
    }

    /// Writes a staged version in a transaction of its own and commits it
    /// (for callers that have nothing else to commit with it).
    pub fn commit(&self, staged: &StagedState) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        self.write(&txn, staged)?;
        txn.commit().map_err(db_err)
    }
}

/// Writes one value row and records which rows it makes stale.
pub(super) fn write_value(
    values: &mut Table<'_, &'static [u8], &'static [u8]>,
    stale: &mut Table<'_, &'static [u8], ()>,
    version: u64,
    hash: &Hash,
    value: Option<&[u8]>,
) -> Result<()> {
    let previous = match version.checked_sub(1) {
        Some(below) => newest_value(values, hash, below)?,
        None => None,
    };
    if value.is_none() {
        if !matches!(previous, Some((_, Some(_)))) {
            // Deleting what is not there: no row needed to answer "absent".
            return Ok(());
        }
        // Once versions before this one are pruned, absence needs no row:
        // the deletion row goes with the row it hides.
        let own = stale_value_key(version, hash, version);
        stale.insert(own.as_slice(), ()).map_err(db_err)?;
    }
    if let Some((old, _)) = previous {
        let key = stale_value_key(version, hash, old);
        stale.insert(key.as_slice(), ()).map_err(db_err)?;
    }
    let row = encode_value(value);
    values
        .insert(value_key(hash, version).as_slice(), row.as_slice())
        .map_err(db_err)?;
    Ok(())
}

/// The newest version in the roots table.
pub(super) fn last_version(roots: &impl ReadableTable<u64, [u8; 32]>) -> Result<Option<u64>> {
    Ok(roots.last().map_err(db_err)?.map(|(k, _)| k.value()))
}

/// The root of `version`, or why it cannot be read.
pub(super) fn readable_root(roots: &impl ReadableTable<u64, [u8; 32]>, version: u64) -> Result<Hash> {
    if let Some(root) = roots.get(version).map_err(db_err)? {
        return Ok(root.value());
    }
    let first = roots.first().map_err(db_err)?.map(|(k, _)| k.value());
    let reason = match (first, last_version(roots)?) {
        (Some(first), _) if version < first => {
            format!("pruned; the oldest version kept is {first}")
        }
        (_, Some(last)) => format!("not written; the latest version is {last}"),
        (_, None) => "the state is empty".to_string(),
    };
    Err(Error::VersionUnavailable { version, reason })
}
